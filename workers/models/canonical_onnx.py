"""Rewrite an ONNX file into a canonical form, so that a conversion gives the same bytes
on every run.

tflite2onnx and tf2onnx both walk Python sets of graph objects (hashed by address), so
the order of initializers and value_info, and the numbers that tf2onnx appends to the
names it makes up (`const_fold_opt__715`, `unk__835`), change from one run to the next
while the graph itself does not. This renumbers every made-up name by first use in node
order, sorts initializers and value_info by name, and drops the doc strings (they hold
the converter's input path). The computation is untouched.

usage: python canonical_onnx.py IN.onnx OUT.onnx
"""

import re
import sys

import onnx

# tf2onnx's utils.make_name: "<base>__<counter>"; the base may itself hold such a suffix.
MADE_UP = re.compile(r"__(\d+)")


class Renamer:
    def __init__(self):
        self.numbers = {}

    def __call__(self, name):
        if not name or not MADE_UP.search(name):
            return name

        def number(match):
            old = match.group(1)
            if old not in self.numbers:
                self.numbers[old] = str(len(self.numbers))
            return "__" + self.numbers[old]

        return MADE_UP.sub(number, name)


def rename_value_info(value, rename):
    value.name = rename(value.name)
    tensor = value.type.tensor_type
    if tensor.HasField("shape"):
        for dim in tensor.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = rename(dim.dim_param)


def canonical(model):
    graph = model.graph
    rename = Renamer()
    # Number names in the order the graph uses them: inputs, then nodes as listed
    # (tf2onnx writes nodes topologically sorted, in a stable order).
    for value in graph.input:
        rename_value_info(value, rename)
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise SystemExit(f"canonical_onnx: node {node.name} has a subgraph; not handled")
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = rename(node.name)
        node.doc_string = ""
    for value in graph.output:
        rename_value_info(value, rename)
    for value in graph.value_info:
        rename_value_info(value, rename)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
        tensor.doc_string = ""
    for field in ("initializer", "value_info"):
        items = sorted(getattr(graph, field), key=lambda item: item.name)
        del getattr(graph, field)[:]
        getattr(graph, field).extend(items)
    graph.doc_string = ""
    model.doc_string = ""
    return model


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model = onnx.load(sys.argv[1])
    onnx.checker.check_model(model)
    onnx.save(canonical(model), sys.argv[2])


if __name__ == "__main__":
    main()
