"""The simulator's face scenes: identities textured with real photographs, live heads with relief, printed photos,
screen replays and masks, rendered through each unit's camera truth (docs/simulator-faces.md)."""
