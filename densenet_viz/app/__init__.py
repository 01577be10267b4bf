"""The Streamlit layer, the only package that imports streamlit: URL settings, session state, caches,
the sidebar and display helpers for the pages."""
