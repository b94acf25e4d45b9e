"""fastwb with other engines: ``fastwb.integrations.optuna`` (pruning of Optuna
trials) and ``fastwb.integrations.dask`` (prediction over Dask collections).
Each imports its engine only when used, with an install hint when it is absent."""
