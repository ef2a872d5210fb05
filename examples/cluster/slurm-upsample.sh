#!/bin/bash
# PULSE over a large folder as a Slurm job array: every array task is one shard of the sorted
# input list (`--shard auto` reads SLURM_ARRAY_TASK_ID, _MIN, _STEP and _COUNT), all tasks write
# into one shared output folder, and each writes its own report into $OUT/reports/.
#
#   sbatch examples/cluster/slurm-upsample.sh            # IN=/data/faces32 OUT=/data/results
#   pulse report summary /data/results/reports           # when the tasks are done: one line, exit code
#
# A task that is requeued or resubmitted skips the images it finished. The array must be a range
# (0-15, or 0-30:2); a list like 1,3,9 cannot be numbered as shards and is refused.
#SBATCH --job-name=pulse-upsample
#SBATCH --array=0-15
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=pulse-%A_%a.log

set -euo pipefail

IN=${IN:-/data/faces32}
OUT=${OUT:-/data/results}
# The model folder on the shared filesystem (made once with `pulse download ffhq -o ...`).
export PULSE_MODEL=${PULSE_MODEL:-/data/models/ffhq}

# Exit codes: 0 every image converged, 3 some did not (results written), 2 some input refused;
# the job's verdict over all tasks is `pulse report summary`'s.
pulse upsample "$IN" -o "$OUT" --seed 42 --batch-size auto \
    --shard auto --report "$OUT/reports/" -q
