"""Platform-wide pieces that every app uses and no app owns: FrameRef's vocabularies, progress
reporting for long jobs, and the API schema generator."""
