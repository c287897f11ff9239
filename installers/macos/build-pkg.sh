#!/bin/sh
# Build the DexScope agent's macOS installer package. Run ON A MAC, from the repository
# root, after `python installers/build_agent.py` (which builds dist/dexscope-agent/ for
# this Mac's architecture). Needs Xcode's command-line tools (pkgbuild, productbuild).
#
#   sh installers/macos/build-pkg.sh [--sign "Developer ID Installer: Example (TEAMID)"]
#
# Output: dist/packages/dexscope-agent-<version>.pkg. Notarize a signed pkg with
#   xcrun notarytool submit dist/packages/dexscope-agent-<version>.pkg --keychain-profile P --wait
#   xcrun stapler staple dist/packages/dexscope-agent-<version>.pkg
set -eu
SIGN=""
[ "${1:-}" != "--sign" ] || SIGN=${2:?--sign needs an identity}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' dexscope/__init__.py)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
APP="$ROOT/Library/Application Support/DexScope/Agent"
mkdir -p "$APP" "$ROOT/Library/LaunchDaemons" "$ROOT/Library/LaunchAgents" dist/packages
cp -R dist/dexscope-agent/ "$APP/"
cp installers/macos/dexscope-launch "$APP/dexscope-launch"
cp installers/macos/uninstall.sh "$APP/uninstall.sh"
cp installers/macos/com.dexscope.agent.plist "$ROOT/Library/LaunchDaemons/"
cp installers/macos/com.dexscope.survey-helper.plist "$ROOT/Library/LaunchAgents/"
chmod 0755 "$APP/dexscope-launch" "$APP/uninstall.sh"
chmod 0644 "$ROOT"/Library/Launch*/*.plist
plutil -lint "$ROOT"/Library/Launch*/*.plist installers/macos/com.dexscope.agent.mobileconfig
pkgbuild --root "$ROOT" --scripts installers/macos/scripts --identifier com.dexscope.agent \
  --version "$VERSION" --install-location / --ownership recommended "$STAGE/agent.pkg"
if [ -n "$SIGN" ]; then
  productbuild --package "$STAGE/agent.pkg" --sign "$SIGN" "dist/packages/dexscope-agent-$VERSION.pkg"
else
  productbuild --package "$STAGE/agent.pkg" "dist/packages/dexscope-agent-$VERSION.pkg"
fi
echo "built dist/packages/dexscope-agent-$VERSION.pkg"
