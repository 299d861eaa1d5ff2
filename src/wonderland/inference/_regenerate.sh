#!/bin/sh
# Regenerates the committed gRPC stubs from grpc_predict_v2.proto (run from anywhere).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
cd / && "$python" -m grpc_tools.protoc -I"$here" --python_out="$here/_generated" \
  --pyi_out="$here/_generated" --grpc_python_out="$here/_generated" "$here/grpc_predict_v2.proto"
# The generated service module imports its sibling as a top-level module; make it relative.
sed -i 's/^import grpc_predict_v2_pb2 as/from . import grpc_predict_v2_pb2 as/' \
  "$here/_generated/grpc_predict_v2_pb2_grpc.py"
# Keep our messages in a private descriptor pool: tritonclient registers the same
# `inference.*` names (from grpc_service.proto) in the default pool, and both may live in
# one process (tests, transformers calling a predictor).
sed -i 's/_descriptor_pool.Default().AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
  "$here/_generated/grpc_predict_v2_pb2.py"
