#!/bin/sh
# Regenerates the committed gRPC stubs from api.proto (Katib's pkg/apis/manager/v1beta1,
# kubeflow/katib@33c8ff4, the API of release v0.19.0); run from anywhere.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
cd / && "$python" -m grpc_tools.protoc -I"$here" --python_out="$here/_generated" \
  --pyi_out="$here/_generated" --grpc_python_out="$here/_generated" "$here/api.proto"
# The generated service module imports its sibling as a top-level module; make it relative.
sed -i 's/^import api_pb2 as/from . import api_pb2 as/' "$here/_generated/api_pb2_grpc.py"
# Keep Katib's messages in a private descriptor pool: its package name (api.v1.beta1) is
# generic, and the kubeflow-katib SDK registers the same file name in the default pool.
sed -i 's/_descriptor_pool.Default().AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
  "$here/_generated/api_pb2.py"
