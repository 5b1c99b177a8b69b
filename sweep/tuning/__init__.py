"""Per-size hyperparameter tuning with Optuna (``sweep tune``): studies whose trials are runs trained by the
orchestrator (``driver``), their Optuna plumbing (``study``), the rules fitted to them (``rule``: LR*(N) with
bootstrap intervals; pure), their table and rule file (``summary``) and report (``report``)."""
