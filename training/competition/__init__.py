"""The tournament between candidates: each tuned by an Optuna search (`search`),
cross-validated on the same folds and ranked (`compete`), and the winner's Platt
calibration on its out-of-fold margins (`calibration`)."""
