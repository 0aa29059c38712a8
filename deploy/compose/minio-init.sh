#!/bin/sh
# Creates the buckets and the services' user, allowed only the streamdet buckets.
set -eu
mc alias set local http://minio:9000 "$(cat /run/secrets/minio-user)" "$(cat /run/secrets/minio-root-password)" >/dev/null
for b in frames detections annotated models deadletters; do mc mb --ignore-existing "local/$b"; done
cat >/tmp/streamdet.json <<'POLICY'
{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["s3:GetBucketLocation","s3:ListBucket","s3:CreateBucket"],"Resource":["arn:aws:s3:::frames","arn:aws:s3:::detections","arn:aws:s3:::annotated","arn:aws:s3:::models","arn:aws:s3:::deadletters"]},
 {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::frames/*","arn:aws:s3:::detections/*","arn:aws:s3:::annotated/*","arn:aws:s3:::models/*","arn:aws:s3:::deadletters/*"]}]}
POLICY
mc admin policy create local streamdet /tmp/streamdet.json
mc admin user add local streamdet "$(cat /run/secrets/minio-password)"
mc admin policy attach local streamdet --user streamdet || true
