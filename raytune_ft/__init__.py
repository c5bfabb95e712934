"""raytune_ft: compare fine-tuning strategies with Ray Tune + Ray Train + Accelerate."""
__version__ = "0.1.0"
