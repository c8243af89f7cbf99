# The hosted service's image (mode="service"): `rclaude-infra serve` behind the load
# balancer, `rclaude-infra worker` beside it. The same build context as the runner's (the
# installed package directory) and the same base, so both build paths (local Docker,
# CodeBuild) build it with the runner:
#   docker build -f rclaude_infra/_pulumi/runner/service.Dockerfile -t rclaude-service rclaude_infra
ARG BASE_IMAGE=public.ecr.aws/docker/library/python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

COPY _pulumi/runner/service-requirements.txt /opt/rclaude/requirements.txt
RUN pip install --no-cache-dir -r /opt/rclaude/requirements.txt \
    && groupadd --gid 1000 service \
    && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home service
COPY . /opt/rclaude/rclaude_infra

# Read-only root: the task definition makes /tmp the one writable place.
USER 1000:1000
ENV HOME=/tmp PYTHONPATH=/opt/rclaude PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["python", "-m", "rclaude_infra", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-dispatch"]
