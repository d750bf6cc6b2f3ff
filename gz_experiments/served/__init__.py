"""The served model: the predictor behind a logged model, its MLflow python_function flavour, the
inputs it takes, and the ensemble that averages several of them."""
