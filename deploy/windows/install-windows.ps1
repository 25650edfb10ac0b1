# dars on Windows: copies dars.exe and dars.toml to C:\dars, and registers a scheduled task that
# starts `dars serve` at every boot as SYSTEM (before anyone logs in) and restarts it if it
# stops; opens the firewall for phones (TCP 8080) and mDNS (UDP 5353).
# Run in PowerShell as Administrator, from the stick's dars-windows folder:
#   powershell -ExecutionPolicy Bypass -File .\install-windows.ps1
#   powershell -ExecutionPolicy Bypass -File .\install-windows.ps1 -Uninstall   (keeps C:\dars\data)
# NOT TESTED ON WINDOWS: dars.exe was built and run under Wine on Linux only.
param([switch]$Uninstall)
$ErrorActionPreference = 'Stop'
$Dir = 'C:\dars'
$Task = 'dars'

if ($Uninstall) {
    Stop-ScheduledTask -TaskName $Task -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $Task -Confirm:$false -ErrorAction SilentlyContinue
    Get-NetFirewallRule -DisplayName 'dars*' -ErrorAction SilentlyContinue | Remove-NetFirewallRule
    Remove-Item "$Dir\dars.exe" -ErrorAction SilentlyContinue
    Write-Host "dars is removed. The lessons stay in $Dir\data and the settings in $Dir\dars.toml."
    exit 0
}

New-Item -ItemType Directory -Force -Path "$Dir\data" | Out-Null
Stop-ScheduledTask -TaskName $Task -ErrorAction SilentlyContinue
Copy-Item -Force "$PSScriptRoot\dars.exe" "$Dir\dars.exe"
if (-not (Test-Path "$Dir\dars.toml")) {
    Copy-Item "$PSScriptRoot\dars.toml" "$Dir\dars.toml"
    Write-Host "Installed $Dir\dars.toml: edit centre_name there, then restart the computer."
} else {
    Write-Host "Kept your $Dir\dars.toml."
}

$action = New-ScheduledTaskAction -Execute "$Dir\dars.exe" `
    -Argument "--config `"$Dir\dars.toml`" --data `"$Dir\data`" serve" -WorkingDirectory $Dir
$trigger = New-ScheduledTaskTrigger -AtStartup
$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit (New-TimeSpan -Seconds 0) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
Register-ScheduledTask -TaskName $Task -Action $action -Trigger $trigger -Principal $principal `
    -Settings $settings -Force | Out-Null

if (-not (Get-NetFirewallRule -DisplayName 'dars web' -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -DisplayName 'dars web' -Direction Inbound -Protocol TCP -LocalPort 8080 -Action Allow | Out-Null
    New-NetFirewallRule -DisplayName 'dars mDNS' -Direction Inbound -Protocol UDP -LocalPort 5353 -Action Allow | Out-Null
}
Start-ScheduledTask -TaskName $Task
Start-Sleep -Seconds 2
try {
    $health = Invoke-RestMethod -Uri 'http://127.0.0.1:8080/healthz' -TimeoutSec 5
    Write-Host "dars is running with $($health.lessons) lessons and starts at every boot."
} catch {
    Write-Host "dars did not answer yet; check with: Get-ScheduledTaskInfo -TaskName dars"
}
