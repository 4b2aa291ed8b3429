"""The train engine: model, adaptation, objective, evaluation and cost meters."""
