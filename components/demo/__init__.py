"""The embedded default: scikit-learn's digits as TFX Examples, and a CNN baseline trained on them."""
