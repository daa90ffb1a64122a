from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ...models import IsolationMode, MoveState
from ...services.moves import (
    MoveBusy,
    MoveRefused,
    move_active,
    move_cancel,
    move_finish,
    move_run,
    move_start,
)
from ...services.servers import ServerError
from ._base import get_tenant


class Command(BaseCommand):
    help = (
        "Move a tenant live to another isolation mode and/or server: copy, catch up, fence "
        "writes briefly, verify, switch, clean up. Run it again to resume a move that was "
        "interrupted (or killed); --cancel rolls back one that has not switched."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--to", choices=IsolationMode.values)
        parser.add_argument("--server", default=None, help="a registered server, or 'default'")
        parser.add_argument(
            "--keep-source", action="store_true", help="keep the source until --finish"
        )
        parser.add_argument("--finish", action="store_true", help="drop a kept source")
        parser.add_argument("--cancel", action="store_true", help="roll back before the switch")

    def handle(self, *args, slug, to, server, keep_source, finish, cancel, **options):
        tenant = get_tenant(slug)
        active = move_active(tenant=tenant)
        try:
            if cancel:
                if active is None:
                    raise CommandError(f"{slug} has no move under way.")
                move = move_cancel(move=active)
                self.stdout.write(f"{slug}: move {move.state}.")
                return
            if finish:
                if active is None or active.state != MoveState.KEPT:
                    raise CommandError(f"{slug} has no move with a kept source.")
                move = move_finish(active, progress=_Bars(self))
            elif active is not None:
                self.stdout.write(f"{slug}: resuming the move at {active.phase}.")
                move = move_run(active, progress=_Bars(self))
            else:
                if to is None:
                    raise CommandError("--to is required to start a move.")
                move = move_start(tenant=tenant, to=to, server=server, keep_source=keep_source)
                move = move_run(move, progress=_Bars(self))
        except (MoveRefused, MoveBusy, ServerError) as exc:
            raise CommandError(str(exc)) from exc
        if move.state in (MoveState.FAILED, MoveState.CANCELLED):
            raise CommandError(f"{slug}: move {move.state}: {move.error}")
        fence = f", writes fenced {move.fence_ms} ms" if move.fence_ms is not None else ""
        done = "source kept until --finish" if move.state == MoveState.KEPT else "done"
        self.stdout.write(
            self.style.SUCCESS(
                f"{slug}: {move.source_mode} -> {move.target_mode} "
                f"on {move.target_server.name if move.target_server else 'default'}: "
                f"{done}{fence}."
            )
        )


class _Bars:
    """One progress bar per phase, and the copied rows per table."""

    def __init__(self, command):
        self.command = command
        self.phase = None
        self.bar = None
        self.tables_seen = set()

    def __call__(self, move) -> None:
        if move.phase != self.phase:
            if self.bar is not None:
                self.bar.close()
            self.phase = move.phase
            self.bar = tqdm(desc=move.phase, unit="row", file=self.command.stderr, leave=True)
        progress = move.progress or {}
        if move.phase == "copy":
            for name, figures in progress.get("tables", {}).items():
                if name not in self.tables_seen:
                    self.tables_seen.add(name)
                    self.bar.update(figures.get("copied", 0))
                    self.bar.set_postfix_str(name)
        elif move.phase in ("catch_up", "fence", "cleanup"):
            self.bar.n = progress.get("applied", 0)
            self.bar.set_postfix_str(f"pending {progress.get('pending', 0)}")
            self.bar.refresh()
