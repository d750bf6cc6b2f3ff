"""The commands besides training (`train.py`): baseline, evaluate, predict, seeds. The sweep, report
and ensemble commands are packages of their own (`gz_experiments/sweep`, `report`, `ensemble`)."""
