"""Hindi speech corpus: text sources, speech synthesis (espeak-ng, Kokoro), augmentation, dataset build."""
