"""The functions. Each turns its trigger into one call of `shared` and returns."""

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from shared import telemetry
from shared.clients import runtime
from shared.pipeline import (
    fetch_exports,
    import_queue_message,
    publish_reports_now,
    replay_request,
    run_replay_job,
    split_export_blob,
)

telemetry.configure()
app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="%FETCH_SCHEDULE%", run_on_startup=False,
                   use_monitor=True)
def fetch(timer: func.TimerRequest) -> None:
    fetch_exports(runtime())


@app.blob_trigger(arg_name="export", path="%EXPORTS_CONTAINER%/{name}",
                  connection="AzureWebJobsStorage", source=func.BlobSource.EVENT_GRID)
def split(export: blob.BlobClient) -> None:
    split_export_blob(runtime(), export)


@app.queue_trigger(arg_name="msg", queue_name="%ITEMS_QUEUE%", connection="AzureWebJobsStorage")
async def import_item(msg: func.QueueMessage) -> None:
    await import_queue_message(runtime(), msg.get_body().decode("utf-8"), msg.dequeue_count or 1,
                               msg.insertion_time)


@app.timer_trigger(arg_name="timer", schedule="%REPORT_SCHEDULE%", run_on_startup=False,
                   use_monitor=True)
def reconcile(timer: func.TimerRequest) -> None:
    publish_reports_now(runtime())


@app.route(route="replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def replay(req: func.HttpRequest) -> func.HttpResponse:
    status, body = replay_request(runtime(), req.get_body())
    return func.HttpResponse(body, status_code=status, mimetype="application/json")


@app.queue_trigger(arg_name="msg", queue_name="%REPLAY_QUEUE%", connection="AzureWebJobsStorage")
def replay_job(msg: func.QueueMessage) -> None:
    run_replay_job(runtime(), msg.get_body().decode("utf-8"), msg.dequeue_count or 1)
