"""The `rag` command. Heavy libraries (torch, llama.cpp) load inside the commands that need them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from rag.cli.asking import ask_cmd, chat_cmd, search_cmd
from rag.cli.checking import check_cmd
from rag.cli.common import err, one_line
from rag.cli.eval import calibrate_cmd, eval_cmd, squad_cmd
from rag.cli.feeds import feeds_app, update_cmd
from rag.cli.library import index_cmd, migrate_cmd, reindex_cmd, remove_cmd
from rag.cli.serving import info_cmd, serve_cmd
from rag.core.errors import BadInputError, RagError

if TYPE_CHECKING:
    pass

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="newsrag: private question answering over news articles, with checked citations.",
)


@app.callback()
def main_options(
    ctx: typer.Context,
    index_dir: Annotated[Optional[Path], typer.Option("--index-dir", help="index directory (RAG_INDEX_DIR)")] = None,
) -> None:
    from pydantic import ValidationError

    from rag.core.settings import Settings

    overrides = {"index_dir": index_dir} if index_dir else {}
    try:
        ctx.obj = Settings(**overrides)
    except ValidationError as exc:
        # A check across settings (a model validator) has no field name to show.
        problems = "; ".join(
            (f"RAG_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"] for e in exc.errors()
        )
        raise BadInputError(f"invalid setting: {problems}") from None


app.command("index")(index_cmd)
app.command("remove")(remove_cmd)
app.command("reindex")(reindex_cmd)
app.command("search")(search_cmd)
app.command("ask")(ask_cmd)
app.command("chat")(chat_cmd)
app.command("check")(check_cmd)
app.command("info")(info_cmd)
app.command("serve")(serve_cmd)
app.command("migrate")(migrate_cmd)
app.command("eval")(eval_cmd)
app.command("calibrate")(calibrate_cmd)
app.command("squad")(squad_cmd)
app.command("update")(update_cmd)
app.add_typer(feeds_app, name="feeds")


def main() -> None:
    try:
        app()
    except RagError as exc:
        err.print(f"[red]error:[/] {escape(one_line(str(exc)))}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
