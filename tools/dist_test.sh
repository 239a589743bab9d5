#!/usr/bin/env bash
# Distributed testing with torchrun: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options]
# NNODES, NODE_RANK, PORT, MASTER_ADDR and PYTHON are read from the environment.
exec "$(dirname "$0")/dist_run.sh" "$(dirname "$0")/test.py" "$3" "$1" "$2" "${@:4}"
