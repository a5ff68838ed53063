#!/usr/bin/env bash
# Sign Captioneer.app with the hardened runtime, put it in a DMG, notarize the DMG and staple the ticket.
#
#   packaging/macos/sign_and_notarize.sh dist/Captioneer.app dist/Captioneer-0.1.0-macos-arm64.dmg
#
# Every step that needs an Apple account is driven by environment variables and skipped, with a message
# saying so, when they are not set:
#   CAPTIONEER_SIGN_IDENTITY  a "Developer ID Application: Name (TEAMID)" identity in the keychain (signing)
#   APPLE_ID                  the Apple ID that notarizes                                    (notarization)
#   APPLE_TEAM_ID             its team id                                                    (notarization)
#   APPLE_APP_PASSWORD        an app-specific password for that Apple ID                     (notarization)
# Without a signing identity the app keeps PyInstaller's ad-hoc signature: it runs on the Mac that built it,
# and on other Macs Gatekeeper asks people to confirm (Control-click > Open) the first time.
set -euo pipefail

say() { printf 'sign_and_notarize: %s\n' "$*"; }
fail() { say "$*" >&2; exit 1; }

[[ $# -eq 2 ]] || fail "usage: $0 path/to/Captioneer.app path/to/output.dmg"
app=${1%/}
dmg=$2
here=$(cd "$(dirname "$0")" && pwd)
entitlements="$here/entitlements.plist"
identity=${CAPTIONEER_SIGN_IDENTITY:-}

[[ -d $app/Contents/MacOS ]] || fail "$app is not an app bundle (no Contents/MacOS)"
[[ $(uname -s) == Darwin ]] || fail "signing, DMGs and notarization need macOS (codesign, hdiutil, xcrun)"

notary_vars=(APPLE_ID APPLE_TEAM_ID APPLE_APP_PASSWORD)
notary_set=()
notary_missing=()
for name in "${notary_vars[@]}"; do
    if [[ -n ${!name:-} ]]; then notary_set+=("$name"); else notary_missing+=("$name"); fi
done
# A half-configured notarization is a mistake to report, not a reason to ship an un-notarized DMG quietly.
if [[ ${#notary_set[@]} -gt 0 && ${#notary_missing[@]} -gt 0 ]]; then
    fail "notarization needs all of ${notary_vars[*]}; missing: ${notary_missing[*]}"
fi
notarize=$([[ ${#notary_missing[@]} -eq 0 ]] && echo yes || echo no)
if [[ $notarize == yes && -z $identity ]]; then
    fail "APPLE_ID etc. are set but CAPTIONEER_SIGN_IDENTITY is not: Apple notarizes only signed apps"
fi

sign() {  # sign [extra codesign options...] path
    codesign --force --timestamp --options runtime --sign "$identity" "$@"
}

if [[ -n $identity ]]; then
    say "signing $app as '$identity' with the hardened runtime"
    main_executable="$app/Contents/MacOS/$(/usr/libexec/PlistBuddy -c 'Print :CFBundleExecutable' \
        "$app/Contents/Info.plist")"
    # Inside out: every Mach-O file (libraries, Python extensions, Qt plugins), then each framework bundle,
    # deepest first, then the main executable and the app with the entitlements PyInstaller apps need.
    while IFS= read -r -d '' file; do
        [[ $file == "$main_executable" ]] && continue
        if file -b "$file" | grep -q 'Mach-O'; then
            sign "$file"
        fi
    done < <(find "$app/Contents" -type f ! -path '*/_CodeSignature/*' -print0)
    while IFS= read -r framework; do
        sign "$framework"
    done < <(find "$app/Contents" -type d -name '*.framework' | awk '{ print length($0) "\t" $0 }' \
        | sort -rn | cut -f2-)
    sign --entitlements "$entitlements" "$main_executable"
    sign --entitlements "$entitlements" "$app"
    codesign --verify --deep --strict --verbose=2 "$app"
    say "signature verified"
else
    say "CAPTIONEER_SIGN_IDENTITY is not set: skipping code signing; the app keeps PyInstaller's ad-hoc"
    say "signature, so Gatekeeper will ask people to confirm it (Control-click > Open) the first time."
fi

say "making $dmg"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ditto "$app" "$staging/$(basename "$app")"
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
hdiutil create -volname "Captioneer" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$dmg"
if [[ -n $identity ]]; then
    codesign --force --timestamp --sign "$identity" "$dmg"
fi

if [[ $notarize == no ]]; then
    say "APPLE_ID, APPLE_TEAM_ID and APPLE_APP_PASSWORD are not set: skipping notarization and stapling."
    say "Without them macOS warns that the app 'cannot be checked for malicious software'."
    exit 0
fi

say "submitting $dmg for notarization (this waits for Apple's answer, usually a few minutes)"
result=$(xcrun notarytool submit "$dmg" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
    --password "$APPLE_APP_PASSWORD" --wait 2>&1) || true
printf '%s\n' "$result"
if ! grep -q 'status: Accepted' <<<"$result"; then
    submission=$(awk '/^ *id: / { print $2; exit }' <<<"$result")
    if [[ -n $submission ]]; then
        xcrun notarytool log "$submission" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
            --password "$APPLE_APP_PASSWORD" || true
    fi
    fail "Apple did not accept $dmg for notarization (its log is above)"
fi
xcrun stapler staple "$dmg"
xcrun stapler validate "$dmg"
spctl --assess --type open --context context:primary-signature --verbose=2 "$dmg"
say "notarized and stapled: $dmg"
