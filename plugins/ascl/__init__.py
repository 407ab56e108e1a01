"""AsCL (Gong et al., ICME 2024): asymmetry-sensitive contrastive learning with cross-modal fusion."""
