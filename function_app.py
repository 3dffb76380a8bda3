"""The three functions. Each turns its trigger into one call of `shared` and returns."""

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from shared.clients import runtime
from shared.pipeline import fetch_exports, import_queue_message, split_export_blob

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
    await import_queue_message(runtime(), msg.get_body().decode("utf-8"), msg.dequeue_count or 1)
