# The farpool image: workers, Flower and the `farpool` command (docker-compose.yml runs all three).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Workers run user code: never as root.
RUN useradd --create-home --uid 10001 --user-group farpool

# A regular (non-editable) install: the image needs no source tree at run time. With NumPy:
# a worker receives the arrays its producers send (tasks/arrays.py).
COPY pyproject.toml README.md /tmp/farpool/
COPY config /tmp/farpool/config
COPY producer /tmp/farpool/producer
COPY tasks /tmp/farpool/tasks
RUN pip install "/tmp/farpool[numpy]" && rm -rf /tmp/farpool

USER farpool
WORKDIR /home/farpool

# Celery's warm shutdown: running chunks finish before the worker exits.
STOPSIGNAL SIGTERM

# exec form: celery is PID 1's direct child (or PID 1), so it receives the stop signal itself.
CMD ["celery", "-A", "tasks", "worker", "--loglevel=INFO"]
