"""The finetune wing: vocab, alignment, embedding layers, tabular model, training, model dirs, prediction, and its pipeline."""
