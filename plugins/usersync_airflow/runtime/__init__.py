"""What keeps a task's start short: preloading in the forkserver and Celery workers, the scheduler's warm-up."""
