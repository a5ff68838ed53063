; Inno Setup 6 script for Captioneer's Windows installer: per-user, no administrator rights, Start-menu entry,
; uninstaller in Settings > Apps. packaging/build.py runs it after PyInstaller:
;   ISCC.exe /DAppVersion=0.1.0 /DAppVersionNumeric=0.1.0.0 /DSourceDir=dist\Captioneer /DOutputDir=dist
;            /DOutputName=Captioneer-0.1.0-windows-x64-setup /DIconFile=build\icons\captioneer.ico captioneer.iss
; The models and the catalog live in %LOCALAPPDATA%\Captioneer (not in the install folder), so uninstalling
; keeps them; the uninstaller says where they are.

#ifndef AppVersion
  #error Pass the version: ISCC.exe /DAppVersion=X.Y.Z (packaging/build.py reads it from pyproject.toml)
#endif
#ifndef AppVersionNumeric
  ; Windows file versions are four numbers; build.py passes e.g. 0.1.0.0 for 0.1.0 (and for 0.1.0rc1).
  #define AppVersionNumeric AppVersion
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\Captioneer"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#ifndef OutputName
  #define OutputName "Captioneer-" + AppVersion + "-windows-x64-setup"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\icons\captioneer.ico"
#endif
#define AppExe "Captioneer.exe"

[Setup]
; The AppId identifies Captioneer across versions, so an update replaces the installed copy. Never change it.
AppId={{6F1D3C52-8E4B-4A7D-9C21-5B0E7A3F9D14}
AppName=Captioneer
AppVersion={#AppVersion}
AppVerName=Captioneer {#AppVersion}
AppPublisher=Captioneer developers
AppCopyright=GPL-3.0-or-later
VersionInfoVersion={#AppVersionNumeric}
; Per-user install: no UAC prompt, nothing written outside the user's profile.
PrivilegesRequired=lowest
DefaultDirName={localappdata}\Programs\Captioneer
DefaultGroupName=Captioneer
DisableProgramGroupPage=yes
DisableDirPage=auto
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename={#OutputName}
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName=Captioneer
WizardStyle=modern
Compression=lzma2/max
SolidCompression=yes
; An update closes a running Captioneer first instead of failing on files in use.
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An update must not leave libraries of the previous version next to the new ones.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Captioneer"; Filename: "{app}\{#AppExe}"; Comment: "Captions, alt text and keywords for photos"
Name: "{autodesktop}\Captioneer"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,Captioneer}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
Type: filesandordirs; Name: "{app}\_internal"

[Code]
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if (CurUninstallStep = usPostUninstall) and not UninstallSilent() then
    MsgBox('Captioneer is removed. Your downloaded models, settings and photo catalog are still in '
      + ExpandConstant('{localappdata}\Captioneer') + '. Delete that folder to free the space.',
      mbInformation, MB_OK);
end;
