"""Uploads that outlive their file: a restarted server process no longer holds what the browser still shows."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.uploaded_file_manager import DeletedFile


def warn_if_upload_lost(key: str, what: str) -> bool:
    """Warn, and return True, when the uploader `key` names a file this server process does not hold.

    An upload lives in the memory of the server process that received it. When that process is gone
    (restarted, or killed behind a load balancer that moved the session to another replica), the browser
    still shows the file's name; Streamlit keeps a DeletedFile as the widget's value and hands the page None.
    """
    lost = isinstance(st.session_state.get(key), DeletedFile)
    if lost:
        st.warning(
            f"The {what} you uploaded is no longer on the server (it restarted, or your session moved to "
            "another server process): upload it again."
        )
    return lost
