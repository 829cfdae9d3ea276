"""Claims, datasets and (later) human studies: the annotation side of FrameLab."""
