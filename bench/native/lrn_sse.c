// The floor for a 128-bit SIMD LocalResponseNorm kernel on this machine: LRN forward on
// B = (8, 96, 55, 55) (size 5, alpha 1e-4 in Lucid's semantics, beta 0.75, k 2) written with SSE
// intrinsics, four lanes wide like WebAssembly's f32x4, with the same operations as the kernel
// @lucid/nn generates (window sum of squares, two square roots and one division per four
// outputs), on one thread and split over the batch and channels with OpenMP. Kernel time only:
// the input is already in memory and the output is written in place, no copies, no allocation.
// It is a measuring tool for README's "Why B stops where it does", not part of the library.
//
// Build and run (gcc is on the project's machine; not run by CI); the shape defaults to B:
//   gcc -O2 -msse4.2 -fopenmp -o /tmp/lrn_sse bench/native/lrn_sse.c -lm && /tmp/lrn_sse
//   /tmp/lrn_sse 2 96 27 27      # A: batch, channels, height, width

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { RUNS = 41 };
// The shape, B's unless given on the command line.
static int BATCH = 8, CHANNELS = 96, PLANE = 55 * 55;
static const float ALPHA = 1e-4f, K = 2.0f;

static double nowMs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// One (batch, channel) plane of y = x / (k + alpha * window sum of x^2) ^ 0.75.
static void lrnPlane(const float *x, float *y, int b, int c) {
  const int first = c - 2 < 0 ? 0 : c - 2;
  const int last = c + 2 >= CHANNELS ? CHANNELS - 1 : c + 2;
  const float *plane = x + ((size_t)b * CHANNELS + c) * PLANE;
  float *out = y + ((size_t)b * CHANNELS + c) * PLANE;
  int i = 0;
  for (; i + 4 <= PLANE; i += 4) {
    __m128 sum = _mm_setzero_ps();
    for (int j = first; j <= last; j++) {
      const __m128 v = _mm_loadu_ps(x + ((size_t)b * CHANNELS + j) * PLANE + i);
      sum = _mm_add_ps(sum, _mm_mul_ps(v, v));
    }
    const __m128 d = _mm_add_ps(_mm_mul_ps(sum, _mm_set1_ps(ALPHA)), _mm_set1_ps(K));
    const __m128 root = _mm_sqrt_ps(d);
    const __m128 fourthRoot = _mm_sqrt_ps(root);
    _mm_storeu_ps(out + i, _mm_div_ps(_mm_loadu_ps(plane + i), _mm_mul_ps(root, fourthRoot)));
  }
  for (; i < PLANE; i++) {
    float sum = 0;
    for (int j = first; j <= last; j++) {
      const float v = x[((size_t)b * CHANNELS + j) * PLANE + i];
      sum += v * v;
    }
    const float d = K + ALPHA * sum;
    out[i] = plane[i] / (sqrtf(d) * sqrtf(sqrtf(d)));
  }
}

static int byValue(const void *a, const void *b) {
  const double d = *(const double *)a - *(const double *)b;
  return (d > 0) - (d < 0);
}

// Median milliseconds of RUNS kernels on `threads` threads; checks y against float64 math.
static double measure(const float *x, float *y, int threads) {
  double times[RUNS];
  for (int run = 0; run < RUNS; run++) {
    const double start = nowMs();
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int b = 0; b < BATCH; b++) {
      for (int c = 0; c < CHANNELS; c++) lrnPlane(x, y, b, c);
    }
    times[run] = nowMs() - start;
  }
  for (size_t n = 0; n < (size_t)BATCH * CHANNELS * PLANE; n += 997) {
    const size_t b = n / ((size_t)CHANNELS * PLANE), c = n / PLANE % CHANNELS, i = n % PLANE;
    double sum = 0;
    for (size_t j = c < 2 ? 0 : c - 2; j <= c + 2 && j < CHANNELS; j++) {
      const double v = x[(b * CHANNELS + j) * PLANE + i];
      sum += v * v;
    }
    const double want = x[n] / pow(2.0 + 1e-4 * sum, 0.75);
    if (fabs(y[n] - want) > 1e-5 * fabs(want) + 1e-30) {
      fprintf(stderr, "wrong at %zu: %g, want %g\n", n, y[n], want);
      exit(1);
    }
  }
  qsort(times, RUNS, sizeof times[0], byValue);
  return times[RUNS / 2];
}

int main(int argc, char **argv) {
  if (argc != 1 && argc != 5) {
    fprintf(stderr, "usage: %s [batch channels height width]\n", argv[0]);
    return 2;
  }
  int height = 55, width = 55;
  if (argc == 5) {
    BATCH = atoi(argv[1]);
    CHANNELS = atoi(argv[2]);
    height = atoi(argv[3]);
    width = atoi(argv[4]);
    if (BATCH < 1 || CHANNELS < 1 || height < 1 || width < 1) {
      fprintf(stderr, "%s: every extent must be a positive integer\n", argv[0]);
      return 2;
    }
    PLANE = height * width;
  }
  const size_t n = (size_t)BATCH * CHANNELS * PLANE;
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  srand(1);
  for (size_t i = 0; i < n; i++) x[i] = 40.0f * ((float)rand() / RAND_MAX - 0.5f);
  printf("LRN forward (%d, %d, %d, %d), SSE (4 lanes), kernel only, median of %d:\n", BATCH,
         CHANNELS, height, width, RUNS);
  printf("  1 thread:  %.3f ms\n", measure(x, y, 1));
  printf("  2 threads: %.3f ms\n", measure(x, y, 2));
  free(x);
  free(y);
  return 0;
}
