#!/usr/bin/env bash
# The whole chain on the built-in synthetic benchmark with the tiny model, on CPU in a few minutes:
# generate data -> train_ce -> train_scst (greedy baseline, top-5 references it builds into its run directory,
# end of sentence in the reward: its defaults) -> caption the test split (beam 5) -> evaluate; then question
# answering on the same videos: train_ce on the synthetic avqa-train.json -> answer avqa-test.json -> evaluate.
# Knobs (environment): DATA (default demo_data), RUN (default runs/demo), CE_EPOCHS, SCST_EPOCHS, QA_STEPS,
# THREADS (CPU threads of every step, default 1: on a 2-core machine shared with another CPU-bound job a second
# thread waits on the busy core at every step, 8.7 s/step instead of under 1 s; THREADS=2 on an idle machine).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
PY=${PY:-.venv/bin/python}
DATA=${DATA:-demo_data}
RUN=${RUN:-runs/demo}
CE_EPOCHS=${CE_EPOCHS:-2}
SCST_EPOCHS=${SCST_EPOCHS:-1}
QA_STEPS=${QA_STEPS:-300}

[ -f "$DATA/meta.json" ] || $PY -m videoblip2.synth --out "$DATA"
$PY -m train.train_ce --tiny --features "$DATA" --ann "$DATA/train_val_videodatainfo.json" \
    --out "$RUN/ce" --epochs "$CE_EPOCHS" --batch-size 32 --lr 2e-3 --dropout 0 --val-videos 50 --num-threads "$THREADS"
$PY -m train.train_scst --model "$RUN/ce" --features "$DATA" --ann "$DATA/train_val_videodatainfo.json" \
    --out "$RUN/scst" --epochs "$SCST_EPOCHS" --batch-size 8 --lr 5e-5 --val-videos 50 --num-threads "$THREADS"
for stage in ce scst; do
  $PY -m videoblip2.predict --model "$RUN/$stage/best" --features "$DATA" \
      --ann "$DATA/test_videodatainfo.json" --split test --out "$RUN/$stage/test_predictions.json"
  echo "== $stage: test split"
  $PY -m eval.evaluate --predictions "$RUN/$stage/test_predictions.json" \
      --ann "$DATA/test_videodatainfo.json" --split test --out "$RUN/$stage/test_metrics.json"
done

# question answering: questions in the prompt template, answers as targets; greedy answers, exact match
# (a demo_data/ written before the synthetic questions existed gets them: its other files come out identical)
[ -f "$DATA/avqa-train.json" ] || $PY -m videoblip2.synth --out "$DATA" --overwrite
$PY -m train.train_ce --tiny --features "$DATA" --qa-ann "$DATA/avqa-train.json" --qa-val-ann "$DATA/avqa-val.json" \
    --out "$RUN/qa" --max-steps "$QA_STEPS" --batch-size 32 --lr 2e-3 --dropout 0 --num-threads "$THREADS"
$PY -m videoblip2.predict --model "$RUN/qa/best" --features "$DATA" --ann "$DATA/avqa-test.json" \
    --out "$RUN/qa/test_answers.json" --num-beams 1
echo "== qa: test questions"
$PY -m eval.evaluate --predictions "$RUN/qa/test_answers.json" --ann "$DATA/avqa-test.json" \
    --out "$RUN/qa/test_metrics.json"
