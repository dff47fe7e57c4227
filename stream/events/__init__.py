"""Events on the wire (impressions, actions, labelled samples), their validation, dead letters, and
the conversion of samples into model batches. Used by the joiner, the trainer's reader and scoring alike."""
