// A one-node ONNX model (LRN), written as protobuf bytes by hand so the bench needs no ONNX
// tooling. Field numbers are those of onnx.proto (ModelProto, GraphProto, NodeProto,
// AttributeProto, ValueInfoProto, TypeProto); only what onnxruntime needs to load the graph is
// written.

/** Protobuf wire-format writer: varints, length-delimited fields, 32-bit floats. */
class ProtoWriter {
  readonly bytes: number[] = [];

  varint(value: number): void {
    let v = value;
    while (v > 127) {
      this.bytes.push((v % 128) | 128);
      v = Math.floor(v / 128);
    }
    this.bytes.push(v);
  }

  key(field: number, wireType: 0 | 2 | 5): void {
    this.varint(field * 8 + wireType);
  }

  int(field: number, value: number): void {
    this.key(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.key(field, 5);
    this.bytes.push(...new Uint8Array(new Float32Array([value]).buffer));
  }

  raw(field: number, bytes: ArrayLike<number>): void {
    this.key(field, 2);
    this.varint(bytes.length);
    for (let i = 0; i < bytes.length; i++) this.bytes.push(bytes[i]);
  }

  string(field: number, text: string): void {
    this.raw(field, new TextEncoder().encode(text));
  }

  message(field: number, write: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    write(inner);
    this.raw(field, inner.bytes);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;

/** ONNX LRN attributes: ONNX divides alpha by size, unlike Lucid. */
export interface OnnxLrnAttributes {
  readonly size: number;
  readonly alpha: number;
  readonly beta: number;
  readonly bias: number;
}

/** A model `y = LRN(x)` for a float32 input `x` of `shape` (opset 13). */
export function lrnModel(shape: readonly number[], a: OnnxLrnAttributes): Uint8Array {
  const model = new ProtoWriter();
  model.int(1, 8); // ir_version
  model.message(8, (opset) => { // opset_import: default domain, version 13
    opset.string(1, "");
    opset.int(2, 13);
  });
  const valueInfo = (graph: ProtoWriter, field: number, name: string) =>
    graph.message(field, (info) => {
      info.string(1, name);
      info.message(2, (type) =>
        type.message(1, (tensor) => { // TypeProto.tensor_type
          tensor.int(1, FLOAT);
          tensor.message(2, (dims) => { // TensorShapeProto
            for (const d of shape) dims.message(1, (dim) => dim.int(1, d));
          });
        }));
    });
  const floatAttribute = (node: ProtoWriter, name: string, value: number) =>
    node.message(5, (attr) => {
      attr.string(1, name);
      attr.float(2, value);
      attr.int(20, ATTRIBUTE_FLOAT);
    });
  model.message(7, (graph) => {
    graph.message(1, (node) => {
      node.string(1, "x");
      node.string(2, "y");
      node.string(3, "lrn");
      node.string(4, "LRN");
      floatAttribute(node, "alpha", a.alpha);
      floatAttribute(node, "beta", a.beta);
      floatAttribute(node, "bias", a.bias);
      node.message(5, (attr) => {
        attr.string(1, "size");
        attr.int(3, a.size);
        attr.int(20, ATTRIBUTE_INT);
      });
    });
    graph.string(2, "lrn");
    valueInfo(graph, 11, "x");
    valueInfo(graph, 12, "y");
  });
  return new Uint8Array(model.bytes);
}
