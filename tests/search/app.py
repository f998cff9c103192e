"""The nnexp app with the search commands, for tests (also run as a script by subprocess tests).

Until nnexp.cli registers them itself, they are added here.
"""

from nnexp.cli import app
from nnexp.search_cli import register

if not any(c.name == "search" for c in app.registered_commands):
    register(app)

if __name__ == "__main__":
    app()
