#!/usr/bin/env bash
# torchrun for the tools: tools/dist_run.sh SCRIPT NPROC [script arguments]
# (dist_train.sh and dist_test.sh call this). Without a GPU the processes talk over gloo on the
# CPU (see mmext.utils.prepare_distributed).
SCRIPT=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
# The interpreter: $PYTHON, else the clone's .venv (made by `make install`), else python.
VENV_PYTHON="$(dirname "$0")/../.venv/bin/python"
[ -x "$VENV_PYTHON" ] && PYTHON=${PYTHON:-$VENV_PYTHON}

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$SCRIPT" "${@:3}" --launcher pytorch
