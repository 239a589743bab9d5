#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NPROC [train.py options]
# NNODES, NODE_RANK, PORT, MASTER_ADDR and PYTHON are read from the environment.
exec "$(dirname "$0")/dist_run.sh" "$(dirname "$0")/train.py" "$2" "$1" "${@:3}"
