"""D2S-VSE (Liu et al., ICCV 2025): dense-text pre-training and dense-to-sparse distillation."""
