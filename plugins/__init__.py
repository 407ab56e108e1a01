"""The seed methods as plugins (AsCL, D2S-VSE); each method is a folder of its own."""
