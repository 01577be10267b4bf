"""Class: the teacher leads a lesson, the class predicts on their phones, the room sees the answers."""

from densenet_viz.app import classroom, ui

ui.get_state()
classroom.page()
