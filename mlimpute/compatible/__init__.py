"""Analysis-model-compatible imputation kernels (placeholder docstring)."""
