#!/usr/bin/env bash
# Storage helpers shared by pg-backup.sh and pg-restore.sh (sourced). `url` must be set:
# s3://BUCKET/PREFIX (through s3cmd and $S3CMD_CONFIG) or file:///DIR.
: "${url:?backup-store.sh: set url before sourcing}"

s3cmd_run() {
    s3cmd --config="${S3CMD_CONFIG:-/etc/raiox/s3cfg}" --no-progress "$@"
}

store_put() { # LOCAL_FILE KEY
    case "$url" in
        s3://*) s3cmd_run put --quiet "$1" "$url/$2" ;;
        file://*) mkdir -p "$(dirname "${url#file://}/$2")" && cp "$1" "${url#file://}/$2" ;;
        *) echo "unsupported backup URL: $url" >&2; return 1 ;;
    esac
}

store_get() { # KEY LOCAL_FILE
    case "$url" in
        s3://*) s3cmd_run get --quiet --force "$url/$1" "$2" ;;
        file://*) cp "${url#file://}/$1" "$2" ;;
        *) echo "unsupported backup URL: $url" >&2; return 1 ;;
    esac
}

store_rm() { # KEY
    case "$url" in
        s3://*) s3cmd_run del --quiet "$url/$1" ;;
        file://*) rm -f "${url#file://}/$1" ;;
        *) echo "unsupported backup URL: $url" >&2; return 1 ;;
    esac
}

store_ls() { # FOLDER: file names (not keys) under it, sorted
    case "$url" in
        s3://*) s3cmd_run ls "$url/$1/" | awk '{print $NF}' | sed 's#.*/##' | sort ;;
        file://*)
            if [[ -d "${url#file://}/$1" ]]; then
                find "${url#file://}/$1" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | sort
            fi
            ;;
        *) echo "unsupported backup URL: $url" >&2; return 1 ;;
    esac
}
