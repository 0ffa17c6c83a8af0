# syntax=docker/dockerfile:1
# Build stage: dependencies into a virtualenv, compiled where needed.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
RUN /venv/bin/pip install -r /tmp/requirements.txt

# Helm CLI for real customer installs (SIMULATE_K8S_DEPLOYMENT=false), from the official release.
FROM python:3.11-slim AS helm
ARG TARGETARCH=amd64
ARG HELM_VERSION=3.17.3
ADD https://get.helm.sh/helm-v${HELM_VERSION}-linux-${TARGETARCH}.tar.gz /tmp/helm.tgz
RUN tar -xzf /tmp/helm.tgz -C /tmp && mv /tmp/linux-${TARGETARCH}/helm /usr/local/bin/helm

# Runtime stage: the virtualenv and the code, run as a non-root user.
FROM python:3.11-slim AS runtime
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DEBUG=false \
    PORT=3100 \
    LICENSE_PRIVATE_KEY_PATH=/app/keys/private-key.pem \
    LICENSE_PUBLIC_KEY_PATH=/app/keys/public-key.pem \
    HELM_CHART_PATH=/app/charts/customer-instance
RUN useradd --create-home --uid 10001 billing
WORKDIR /app
COPY --from=build /venv /venv
COPY --from=helm /usr/local/bin/helm /usr/local/bin/helm
COPY --chown=billing:billing . .
# Static files are collected with throwaway secrets: production settings refuse to load without them.
RUN DEBUG=true LICENSE_PRIVATE_KEY_PATH=/tmp/k/private.pem LICENSE_PUBLIC_KEY_PATH=/tmp/k/public.pem \
        python manage.py generate_keys \
    && SECRET_KEY=collectstatic-only ADMIN_API_TOKEN=collectstatic-only \
       LICENSE_PRIVATE_KEY_PATH=/tmp/k/private.pem LICENSE_PUBLIC_KEY_PATH=/tmp/k/public.pem \
        python manage.py collectstatic --noinput \
    && rm -rf /tmp/k \
    && mkdir -p /app/keys && chown billing:billing /app/keys /app/staticfiles
USER billing
EXPOSE 3100
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3100/health/live', timeout=4)"
# --timeout stays above the longest Stripe call (settings: STRIPE_*_TIMEOUT_SECONDS).
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:3100", "--workers", "3", \
     "--timeout", "60", "--access-logfile", "-", "--forwarded-allow-ips", "*"]
