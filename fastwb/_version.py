"""fastwb's version: one place, read by the package, the file format and the build."""
__version__ = "0.1.0"
