#!/usr/bin/env bash
# Set up, then train the main approach (cnn_cropped) briefly on the built-in synthetic data
# through `mlflow run`, and print its test RMSE beside the mean baseline's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# `mlflow run` creates its run before our code starts, in the experiment it is told (else "Default").
export MLFLOW_EXPERIMENT_NAME="${MLFLOW_EXPERIMENT_NAME:-galaxy-zoo}"
SPLIT=(-P data_dir=synthetic -P n_train=1600 -P n_val=200 -P n_test=200)
mlflow run . -e baseline "${SPLIT[@]}" --env-manager local
# A short demo: the report's settings (adamax, batch 100, augmentation) need ~20 epochs; adam with
# small batches and no augmentation beats the mean clearly in 5 (measured: 0.1245 against 0.1647).
mlflow run . -e main "${SPLIT[@]}" -P epochs=5 -P batch_size=16 -P optimizer=adam -P augment=false --env-manager local
python - <<'PY'
import mlflow
runs = mlflow.search_runs(experiment_names=["galaxy-zoo"], order_by=["start_time DESC"], max_results=2)
for _, run in runs.iterrows():
    print(f"{run['tags.approach']:>12}: test_rmse {run['metrics.test_rmse']:.4f}  (run {run['run_id']})")
PY
echo "Compare the runs in the MLflow UI:"
echo "  source .venv/bin/activate && gz-experiments ui"
echo "  then open the link it prints (the runs table sorted by test_rmse, in the Model training view)"
