"""Everything that runs on a farpool worker: `celery -A tasks worker`."""

from tasks.app import FarpoolCelery, app, create_app
from tasks.chunks import mappable_task
from tasks.completed import CompletedProgram
from tasks.programs import run
from tasks.references import RefusedTask

__all__ = ["CompletedProgram", "FarpoolCelery", "RefusedTask", "app", "create_app", "mappable_task", "run"]
