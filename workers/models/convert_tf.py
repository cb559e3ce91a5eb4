"""Convert a TensorFlow model (TF.js graph model, frozen GraphDef or Keras HDF5) to ONNX
with tf2onnx, in the venv of requirements-tf.txt.

usage:
  python convert_tf.py tfjs   MODEL.json OUT.onnx
  python convert_tf.py graphdef MODEL.pb OUT.onnx INPUT:0[,…] OUTPUT:0[,…]
  python convert_tf.py keras  MODEL.h5   OUT.onnx

The output is not yet canonical: fetch.sh passes it through canonical_onnx.py.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np

# tf2onnx 1.17 still calls np.product, which numpy 2 removed.
if not hasattr(np, "product"):
    np.product = np.prod

OPSET = 13


def retain_first_by_name():
    """tf2onnx merges duplicated nodes (the same constant used by many blocks, say) and
    keeps the first in its node list, whose order changes from run to run; so the kept
    name, and the output's bytes, changed too. Keep the smallest name instead."""
    from tf2onnx.optimizer.merge_duplicated_nodes_optimizer import MergeDuplicatedNodesOptimizer

    merge = MergeDuplicatedNodesOptimizer._merge_nodes_that_are_duplicated

    def merge_in_name_order(self, nodes_to_process, graph):
        nodes_to_process.sort(key=lambda node: node.name)
        return merge(self, nodes_to_process, graph)

    MergeDuplicatedNodesOptimizer._merge_nodes_that_are_duplicated = merge_in_name_order


def run_tf2onnx(args):
    """tf2onnx's own command line, in this process (so the numpy shim above applies)."""
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert", "--opset", str(OPSET)] + args
    convert.main()


def add_missing_targs(graph_json):
    """TF.js drops the TArgs attribute of fused ops (_FusedConv2D, _FusedMatMul, …);
    TensorFlow >= 2.x refuses such a NodeDef. Their extra arguments (bias, …) have the
    op's own type T, num_args of them."""
    added = 0
    for node in graph_json["modelTopology"]["node"]:
        attr = node.get("attr", {})
        if "num_args" in attr and "TArgs" not in attr and "T" in attr:
            count = int(attr["num_args"].get("i", "0"))
            attr["TArgs"] = {"list": {"type": [attr["T"]["type"]] * count}}
            added += 1
    return added


def tfjs(model_json, out):
    with open(model_json) as f:
        graph_json = json.load(f)
    added = add_missing_targs(graph_json)
    # The weights are read from files named in the JSON, beside it: patch a copy there.
    with tempfile.TemporaryDirectory() as work:
        source_dir = os.path.dirname(os.path.abspath(model_json))
        for group in graph_json["weightsManifest"]:
            for path in group["paths"]:
                shutil.copy(os.path.join(source_dir, path), os.path.join(work, path))
        patched = os.path.join(work, "model.json")
        with open(patched, "w") as f:
            json.dump(graph_json, f)
        print(f"convert_tf: {os.path.basename(model_json)}: TArgs added to {added} node(s)")
        run_tf2onnx(["--tfjs", patched, "--output", out])


def graphdef(model_pb, out, inputs, outputs):
    run_tf2onnx(["--graphdef", model_pb, "--inputs", inputs, "--outputs", outputs, "--output", out])


def keras(model_h5, out):
    import tf_keras
    import tf2onnx

    model = tf_keras.models.load_model(model_h5, compile=False)
    tf2onnx.convert.from_keras(model, opset=OPSET, output_path=out)


def main():
    retain_first_by_name()
    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "tfjs" and len(args) == 2:
        tfjs(*args)
    elif kind == "graphdef" and len(args) == 4:
        graphdef(*args)
    elif kind == "keras" and len(args) == 2:
        keras(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
