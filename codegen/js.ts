// The JavaScript printer: a kernel as a plain function over typed arrays, compiled with
// `new Function`. Floats compute in double precision and round when stored; int32 arithmetic
// that may overflow wraps explicitly (`| 0`, `Math.imul`), index arithmetic whose range is
// known to fit does not. This is also the source that export hands out.

import { CStylePrinter } from "./printer.ts";
import type { Expr, Kernel, ReduceArg, ScalarType } from "./kernel.ts";

const INT_MIN = -2147483648;
const mayOverflow = (e: Expr) => e.type === "i32" && (e.min <= INT_MIN || e.max >= -INT_MIN);

/** Prints kernels as JavaScript functions `(out, in0, in1, ...) => void`. */
export class JsPrinter extends CStylePrinter {
  protected readonly outputLoops = true;

  protected literal(value: number, type: ScalarType): string {
    if (type === "bool") return value ? "true" : "false";
    if (Number.isNaN(value)) return "NaN";
    if (value === Infinity) return "Infinity";
    if (value === -Infinity) return "-Infinity";
    if (Object.is(value, -0)) return "-0";
    return String(value);
  }

  protected operation(e: Expr, [a, b, c]: readonly string[]): string {
    const wrap = (text: string) => (mayOverflow(e) ? `(${text}) | 0` : text);
    switch (e.op) {
      case "load":
        return `in${e.arg}[${a}]`;
      case "select":
        return `${a} ? ${b} : ${c}`;
      case "cast": {
        const from = e.srcs[0].type;
        if (e.type === "i32") return from === "bool" ? `${a} ? 1 : 0` : `${a} | 0`;
        if (e.type === "f32" && from === "f64") return `Math.fround(${a})`;
        return from === "bool" ? `${a} ? 1 : 0` : a;
      }
      case "neg":
        return wrap(`-${a}`);
      case "exp":
      case "log":
      case "sqrt":
      case "abs":
      case "tanh":
      case "sign":
        return wrap(`Math.${e.op}(${a})`);
      case "rsqrt":
        return `1 / Math.sqrt(${a})`;
      case "recip":
        return `1 / ${a}`;
      case "sigmoid":
        return `1 / (1 + Math.exp(-${a}))`;
      case "not":
        return `!${a}`;
      case "add":
        if (e.srcs[1].isConst() && e.srcs[1].value < 0) return wrap(`${a} - ${-e.srcs[1].value}`);
        return wrap(`${a} + ${b}`);
      case "sub":
        return wrap(`${a} - ${b}`);
      case "mul":
        if (e.srcs[1].isConst(-1)) return wrap(`-${a}`);
        return mayOverflow(e) ? `Math.imul(${a}, ${b})` : `${a} * ${b}`;
      case "div":
        return `${a} / ${b}`;
      case "pow":
        return `Math.pow(${a}, ${b})`;
      case "max":
        return `Math.max(${a}, ${b})`;
      case "min":
        return `Math.min(${a}, ${b})`;
      case "lt":
        return `${a} < ${b}`;
      case "le":
        return `${a} <= ${b}`;
      case "eq":
        return `${a} === ${b}`;
      case "and":
        return `${a} && ${b}`;
      case "idiv":
        return e.srcs[0].min >= 0 ? `(${a} / ${b}) | 0` : `Math.floor(${a} / ${b})`;
      case "imod":
        return e.srcs[0].min >= 0 ? `${a} % ${b}` : `((${a} % ${b}) + ${b}) % ${b}`;
      default:
        throw new Error(`JsPrinter: no spelling for op ${e.op}`);
    }
  }

  protected declare(name: string, _type: ScalarType, text: string, mutable: boolean): string {
    return `${mutable ? "let" : "const"} ${name} = ${text};`;
  }

  protected loopHeader(v: string, lo: string, hi: string): string {
    return `for (let ${v} = ${lo}; ${v} < ${hi}; ${v}++) {`;
  }

  protected accumulate(op: ReduceArg["op"], acc: string, value: string, type: ScalarType): string {
    if (op === "max") return `${acc} = Math.max(${acc}, ${value});`;
    return type === "i32" ? `${acc} = (${acc} + ${value}) | 0;` : `${acc} += ${value};`;
  }

  protected store(index: string, value: string): string {
    return `out[${index}] = ${value};`;
  }

  protected frame(kernel: Kernel, body: string[]): string {
    const params = ["out", ...kernel.inputs.map((_, i) => `in${i}`)].join(", ");
    const header = kernel.comment.split("\n").map((l) => `// ${l}`).join("\n");
    return `${header}\nfunction ${kernel.name}(${params}) {\n${body.join("\n")}\n}\n`;
  }
}

/** The JavaScript source of `kernel`. */
export function printJs(kernel: Kernel): string {
  return new JsPrinter().print(kernel);
}
