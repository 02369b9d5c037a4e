// The op vocabulary of the IR, in one place. Every op here has a shape rule (node.ts), a
// reference evaluation (reference.ts) and a lowering to kernel expressions (codegen/lower.ts);
// every user-facing op also has a vjp rule (autodiff.ts). `unfoldTranspose` is internal: it
// exists only as the gradient of unfoldDim, and its own vjp (a second derivative) throws. The
// split into sources / elementwise / reduce / movement follows tinygrad's UOps: only
// elementwise and reduce ops compute, movement ops are index functions.

/** Elementwise ops of one operand. `float` ones promote int32 input to float32. */
export const UNARY_OPS = {
  neg: { float: false },
  exp: { float: true },
  log: { float: true },
  sqrt: { float: true },
  rsqrt: { float: true },
  recip: { float: true },
  square: { float: false },
  abs: { float: false },
  relu: { float: false },
  sigmoid: { float: true },
  tanh: { float: true },
  sign: { float: false },
} as const;

/**
 * Elementwise ops of two operands of equal shape (broadcasting is explicit `expand`). The same
 * form as UNARY_OPS on purpose: node.ts reads `float` from either table the same way.
 */
export const BINARY_OPS = {
  add: { float: false },
  sub: { float: false },
  mul: { float: false },
  div: { float: true },
  pow: { float: true },
  maximum: { float: false },
  minimum: { float: false },
  /** 1 where a < b, else 0, in the operands' dtype. */
  cmplt: { float: false },
  /** 1 where a == b, else 0, in the operands' dtype. */
  cmpeq: { float: false },
} as const;

/** Reductions over a set of axes; reduced axes keep length 1 in the IR. */
export const REDUCE_OPS = { sum: {}, max: {} } as const;

/** Index functions: views that never copy. */
export const MOVEMENT_OPS = {
  reshape: {},
  permute: {},
  expand: {},
  pad: {},
  shrink: {},
  unfoldDim: {},
  unfoldTranspose: {},
} as const;

/** A unary elementwise op name. */
export type UnaryOp = keyof typeof UNARY_OPS;
/** A binary elementwise op name. */
export type BinaryOp = keyof typeof BINARY_OPS;
/** A reduce op name. */
export type ReduceOp = keyof typeof REDUCE_OPS;
/** A movement op name. */
export type MovementOp = keyof typeof MOVEMENT_OPS;
/** Every IR op: sources, elementwise, `affine`, `cast`, `detach`, reduce and movement ops. */
export type Op =
  | "buffer"
  | "const"
  | UnaryOp
  | BinaryOp
  | "affine"
  | "cast"
  | "detach"
  | ReduceOp
  | MovementOp;

/** Whether `op` is a unary elementwise op. */
export function isUnary(op: Op): op is UnaryOp {
  return op in UNARY_OPS;
}

/** Whether `op` is a binary elementwise op. */
export function isBinary(op: Op): op is BinaryOp {
  return op in BINARY_OPS;
}

/** Whether `op` is a reduction. */
export function isReduce(op: Op): op is ReduceOp {
  return op in REDUCE_OPS;
}

/** Whether `op` is a movement op (a view). */
export function isMovement(op: Op): op is MovementOp {
  return op in MOVEMENT_OPS;
}
