# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The CPU build of torch first, so that the project's range is already satisfied.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir . \
    && useradd --create-home shepherd \
    && mkdir -p /app/var && chown shepherd /app/var
USER shepherd
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput -v0

EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
