# Hyper-V.psm1 — a stand-in for Windows' Hyper-V module, for running gpup's
# host scripts in pwsh on Linux (tests/hostconf/test_pwsh.c).
#
# State lives in the JSON file named by $env:GPUP_HYPERV_STATE; every call
# reads it afresh and every change writes it back, appending one line per
# change to its "Log" array (so a test can see that a run changed nothing):
#   HostOS    "win11" (Get-VMHostPartitionableGpu, -InstancePath) or "win10"
#             (neither: Windows 10 / Server 2022)
#   Gpus      [{ Name, ValidPartitionCounts, PartitionCount, TotalVRAM,
#                AvailableVRAM, MinPartitionVRAM, MaxPartitionVRAM,
#                OptimalPartitionVRAM, ... for Encode, Decode, Compute }]
#   VMs       [{ Name, Id, State ("Off", "Running", "Saved"),
#                GuestControlledCacheTypes, LowMemoryMappedIoSpace,
#                HighMemoryMappedIoSpace, Adapters: [{ Id, InstancePath,
#                the twelve quotas }] }]
#   Registry  { "HKLM:\KEY": { NAME: { Kind, Value } } }
#   Log       [ "what changed", ... ]
# 64-bit values are JSON strings: a double would round 2^64-1.
#
# Like Hyper-V, it refuses adapter, quota and MMIO changes unless the VM is
# Off, quotas outside the GPU's Min/Max or out of order, unknown parameters
# and parameters of the wrong type (the VM and adapter parameters take only
# the objects these cmdlets return), so a wrong script fails here too.
# Registry: Test-Path, Get-Item, New-Item, New-ItemProperty,
# Remove-ItemProperty and Remove-Item are shadowed for HKLM:\ paths only.

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$script:VMType = 'Microsoft.HyperV.PowerShell.VirtualMachine'
$script:AdapterType = 'Microsoft.HyperV.PowerShell.VMGpuPartitionAdapter'
$script:GpuType = 'Microsoft.HyperV.PowerShell.VMHostPartitionableGpu'
$script:Resources = 'VRAM', 'Encode', 'Decode', 'Compute'
$script:QuotaNames = foreach ($r in $script:Resources) { "MinPartition$r"; "MaxPartition$r"; "OptimalPartition$r" }

function Read-State {
    if (-not $env:GPUP_HYPERV_STATE) { throw 'stand-in Hyper-V: GPUP_HYPERV_STATE is not set' }
    return Get-Content -Raw -LiteralPath $env:GPUP_HYPERV_STATE | ConvertFrom-Json -AsHashtable
}

function Write-State($state, [string] $change) {
    $state.Log = @($state.Log) + $change
    $state | ConvertTo-Json -Depth 10 | Set-Content -LiteralPath $env:GPUP_HYPERV_STATE -Encoding utf8NoBOM
}

$script:Win10 = (Read-State).HostOS -eq 'win10'

function New-VMObject($v) {
    [pscustomobject]@{
        PSTypeName                = $script:VMType
        Name                      = [string]$v.Name
        Id                        = [guid]$v.Id
        State                     = [string]$v.State
        GuestControlledCacheTypes = [bool]$v.GuestControlledCacheTypes
        LowMemoryMappedIoSpace    = [UInt64]$v.LowMemoryMappedIoSpace
        HighMemoryMappedIoSpace   = [UInt64]$v.HighMemoryMappedIoSpace
    }
}

function New-AdapterObject($v, $a) {
    $o = [ordered]@{ PSTypeName = $script:AdapterType; Id = [string]$a.Id; VMName = [string]$v.Name; VMId = [guid]$v.Id }
    if (-not $script:Win10) { $o.InstancePath = [string]$a.InstancePath }
    foreach ($k in $script:QuotaNames) { $o[$k] = [UInt64]$a[$k] }
    [pscustomobject]$o
}

function New-GpuObject($g) {
    $o = [ordered]@{ PSTypeName = $script:GpuType; Name = [string]$g.Name
        ValidPartitionCounts = [UInt16[]]@($g.ValidPartitionCounts); PartitionCount = [UInt16]$g.PartitionCount }
    foreach ($r in $script:Resources) {
        foreach ($p in "Total$r", "Available$r", "MinPartition$r", "MaxPartition$r", "OptimalPartition$r") { $o[$p] = [UInt64]$g[$p] }
    }
    [pscustomobject]$o
}

# The state's record of a VM object the caller passed.
function Find-StateVM($state, $vm) {
    $found = @($state.VMs | Where-Object { [guid]$_.Id -eq $vm.Id })
    if ($found.Count -ne 1) { throw "Hyper-V was unable to find a virtual machine with id '$($vm.Id)'." }
    return $found[0]
}

function Assert-Off($v, [string] $what) {
    if ($v.State -ne 'Off') {
        throw "${what}: the operation cannot be performed while the virtual machine '$($v.Name)' is in its current state ($($v.State))."
    }
}

$script:IsVM = { $_.PSObject.TypeNames -contains $script:VMType }
$script:IsAdapter = { $_.PSObject.TypeNames -contains $script:AdapterType }

function Get-VM {
    [CmdletBinding()]
    param([Parameter(Position = 0)] [string[]] $Name, [guid] $Id)
    $state = Read-State
    foreach ($v in @($state.VMs)) {
        if ($PSBoundParameters.ContainsKey('Id') -and [guid]$v.Id -ne $Id) { continue }
        if ($Name -and -not ($Name | Where-Object { $v.Name -like $_ })) { continue }
        New-VMObject $v
    }
}

function Stop-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [ValidateScript({ & $script:IsVM })] [object[]] $VM, [switch] $Force, [switch] $TurnOff)
    $state = Read-State
    foreach ($one in $VM) {
        $v = Find-StateVM $state $one
        if ($v.State -ne 'Running') { throw "Stop-VM: the virtual machine '$($v.Name)' is not running ($($v.State))." }
        $v.State = 'Off'
        Write-State $state "Stop-VM $($v.Id)"
    }
}

function Start-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [ValidateScript({ & $script:IsVM })] [object[]] $VM)
    $state = Read-State
    foreach ($one in $VM) {
        $v = Find-StateVM $state $one
        if ($v.State -eq 'Running') { throw "Start-VM: the virtual machine '$($v.Name)' is already running." }
        $v.State = 'Running'
        Write-State $state "Start-VM $($v.Id)"
    }
}

function Set-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [ValidateScript({ & $script:IsVM })] [object[]] $VM,
        [bool] $GuestControlledCacheTypes, [UInt64] $LowMemoryMappedIoSpace, [UInt64] $HighMemoryMappedIoSpace)
    $state = Read-State
    foreach ($one in $VM) {
        $v = Find-StateVM $state $one
        Assert-Off $v 'Set-VM'
        foreach ($k in 'GuestControlledCacheTypes', 'LowMemoryMappedIoSpace', 'HighMemoryMappedIoSpace') {
            if ($PSBoundParameters.ContainsKey($k)) {
                $v[$k] = if ($k -eq 'GuestControlledCacheTypes') { [bool]$PSBoundParameters[$k] } else { [string]$PSBoundParameters[$k] }
            }
        }
        Write-State $state "Set-VM $($v.Id) $(($PSBoundParameters.Keys | Where-Object { $_ -ne 'VM' } | Sort-Object) -join ',')"
    }
}

function Get-VMGpuPartitionAdapter {
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)] [ValidateScript({ & $script:IsVM })] [object[]] $VM, [string] $AdapterId)
    $state = Read-State
    foreach ($one in $VM) {
        $v = Find-StateVM $state $one
        foreach ($a in @($v.Adapters)) {
            if ($AdapterId -and $a.Id -ne $AdapterId) { continue }
            New-AdapterObject $v $a
        }
    }
}

# Quotas must lie within the GPU's MinPartition..MaxPartition and keep
# Min <= Optimal <= Max, as Hyper-V checks them.
function Assert-Quotas($gpu, $a) {
    foreach ($r in $script:Resources) {
        $min = [UInt64]$a["MinPartition$r"]; $opt = [UInt64]$a["OptimalPartition$r"]; $max = [UInt64]$a["MaxPartition$r"]
        if ($min -gt $opt -or $opt -gt $max) { throw "Set-VMGpuPartitionAdapter: ${r}: Min $min, Optimal $opt, Max $max are out of order." }
        if ($min -lt [UInt64]$gpu["MinPartition$r"] -or $max -gt [UInt64]$gpu["MaxPartition$r"]) {
            throw "Set-VMGpuPartitionAdapter: ${r}: $min..$max is outside the GPU's $($gpu["MinPartition$r"])..$($gpu["MaxPartition$r"])."
        }
    }
}

function Add-AdapterState($state, $v, [string] $path, $bound) {
    Assert-Off $v 'Add-VMGpuPartitionAdapter'
    $gpus = @($state.Gpus)
    if ($path) {
        $gpus = @($gpus | Where-Object { $_.Name -eq $path })
        if ($gpus.Count -eq 0) { throw "Add-VMGpuPartitionAdapter: '$path' is not a partitionable GPU on this host." }
    }
    if ($gpus.Count -eq 0) { throw 'Add-VMGpuPartitionAdapter: no partitionable GPU on this host.' }
    $gpu = $gpus[0]
    $a = [ordered]@{ Id = "Microsoft:$($v.Id)\$([guid]::NewGuid())"; InstancePath = [string]$gpu.Name }
    # No quota given: a full partition, the GPU's own figures.
    foreach ($k in $script:QuotaNames) { $a[$k] = if ($bound.ContainsKey($k)) { [string]$bound[$k] } else { [string]$gpu[$k] } }
    Assert-Quotas $gpu $a
    $v.Adapters = @($v.Adapters) + $a
    Write-State $state "Add-VMGpuPartitionAdapter $($v.Id) $($a.InstancePath)"
}

if ($script:Win10) {
    function Add-VMGpuPartitionAdapter {
        [CmdletBinding()]
        param([Parameter(Mandatory, Position = 0)] [ValidateScript({ & $script:IsVM })] [object[]] $VM, [switch] $Passthru,
            [UInt64] $MinPartitionVRAM, [UInt64] $MaxPartitionVRAM, [UInt64] $OptimalPartitionVRAM,
            [UInt64] $MinPartitionEncode, [UInt64] $MaxPartitionEncode, [UInt64] $OptimalPartitionEncode,
            [UInt64] $MinPartitionDecode, [UInt64] $MaxPartitionDecode, [UInt64] $OptimalPartitionDecode,
            [UInt64] $MinPartitionCompute, [UInt64] $MaxPartitionCompute, [UInt64] $OptimalPartitionCompute)
        $state = Read-State
        foreach ($one in $VM) { Add-AdapterState $state (Find-StateVM $state $one) '' $PSBoundParameters }
    }
} else {
    function Add-VMGpuPartitionAdapter {
        [CmdletBinding()]
        param([Parameter(Mandatory, Position = 0)] [ValidateScript({ & $script:IsVM })] [object[]] $VM, [switch] $Passthru,
            [string] $InstancePath,
            [UInt64] $MinPartitionVRAM, [UInt64] $MaxPartitionVRAM, [UInt64] $OptimalPartitionVRAM,
            [UInt64] $MinPartitionEncode, [UInt64] $MaxPartitionEncode, [UInt64] $OptimalPartitionEncode,
            [UInt64] $MinPartitionDecode, [UInt64] $MaxPartitionDecode, [UInt64] $OptimalPartitionDecode,
            [UInt64] $MinPartitionCompute, [UInt64] $MaxPartitionCompute, [UInt64] $OptimalPartitionCompute)
        $state = Read-State
        foreach ($one in $VM) { Add-AdapterState $state (Find-StateVM $state $one) $InstancePath $PSBoundParameters }
    }

    function Get-VMHostPartitionableGpu {
        [CmdletBinding()]
        param([string] $Name)
        foreach ($g in @((Read-State).Gpus)) {
            if (-not $Name -or $g.Name -eq $Name) { New-GpuObject $g }
        }
    }
}

# Windows 10 / Server 2022's name; still present (deprecated) on newer hosts.
function Get-VMPartitionableGpu {
    [CmdletBinding()]
    param([string] $Name)
    foreach ($g in @((Read-State).Gpus)) {
        if (-not $Name -or $g.Name -eq $Name) { New-GpuObject $g }
    }
}

function Set-VMGpuPartitionAdapter {
    [CmdletBinding(DefaultParameterSetName = 'VMObject')]
    param([Parameter(Mandatory, Position = 0, ParameterSetName = 'VMObject')] [ValidateScript({ & $script:IsVM })] [object[]] $VM,
        [Parameter(ParameterSetName = 'VMObject')] [string] $AdapterId,
        [Parameter(Mandatory, Position = 0, ParameterSetName = 'Object')] [ValidateScript({ & $script:IsAdapter })] [object[]] $VMGpuPartitionAdapter,
        [switch] $Passthru,
        [UInt64] $MinPartitionVRAM, [UInt64] $MaxPartitionVRAM, [UInt64] $OptimalPartitionVRAM,
        [UInt64] $MinPartitionEncode, [UInt64] $MaxPartitionEncode, [UInt64] $OptimalPartitionEncode,
        [UInt64] $MinPartitionDecode, [UInt64] $MaxPartitionDecode, [UInt64] $OptimalPartitionDecode,
        [UInt64] $MinPartitionCompute, [UInt64] $MaxPartitionCompute, [UInt64] $OptimalPartitionCompute)
    $state = Read-State
    $targets = @()
    if ($PSCmdlet.ParameterSetName -eq 'Object') {
        foreach ($o in $VMGpuPartitionAdapter) {
            $v = Find-StateVM $state ([pscustomobject]@{ Id = $o.VMId })
            $targets += , @($v, @(@($v.Adapters) | Where-Object { $_.Id -eq $o.Id }))
        }
    } else {
        foreach ($one in $VM) {
            $v = Find-StateVM $state $one
            $targets += , @($v, @(@($v.Adapters) | Where-Object { -not $AdapterId -or $_.Id -eq $AdapterId }))
        }
    }
    foreach ($t in $targets) {
        $v = $t[0]
        Assert-Off $v 'Set-VMGpuPartitionAdapter'
        if ($t[1].Count -eq 0) { throw "Set-VMGpuPartitionAdapter: VM '$($v.Name)' has no such GPU partition adapter." }
        foreach ($a in $t[1]) {
            foreach ($k in $script:QuotaNames) {
                if ($PSBoundParameters.ContainsKey($k)) { $a[$k] = [string]$PSBoundParameters[$k] }
            }
            Assert-Quotas @(@($state.Gpus) | Where-Object { $_.Name -eq $a.InstancePath })[0] $a
            Write-State $state "Set-VMGpuPartitionAdapter $($v.Id) $($a.Id)"
        }
    }
}

function Remove-VMGpuPartitionAdapter {
    [CmdletBinding(DefaultParameterSetName = 'VMObject')]
    param([Parameter(Mandatory, Position = 0, ParameterSetName = 'VMObject')] [ValidateScript({ & $script:IsVM })] [object[]] $VM,
        [Parameter(ParameterSetName = 'VMObject')] [string] $AdapterId,
        [Parameter(Mandatory, Position = 0, ParameterSetName = 'Object')] [ValidateScript({ & $script:IsAdapter })] [object[]] $VMGpuPartitionAdapter,
        [switch] $Passthru)
    $state = Read-State
    $pairs = @()
    if ($PSCmdlet.ParameterSetName -eq 'Object') {
        foreach ($o in $VMGpuPartitionAdapter) { $pairs += , @([pscustomobject]@{ Id = $o.VMId }, $o.Id) }
    } else {
        foreach ($one in $VM) { $pairs += , @($one, $AdapterId) }
    }
    foreach ($p in $pairs) {
        $v = Find-StateVM $state $p[0]
        Assert-Off $v 'Remove-VMGpuPartitionAdapter'
        $gone = @(@($v.Adapters) | Where-Object { -not $p[1] -or $_.Id -eq $p[1] })
        if ($gone.Count -eq 0) { throw "Remove-VMGpuPartitionAdapter: VM '$($v.Name)' has no such GPU partition adapter." }
        $v.Adapters = @(@($v.Adapters) | Where-Object { $gone -notcontains $_ })
        Write-State $state "Remove-VMGpuPartitionAdapter $($v.Id) $(($gone | ForEach-Object { $_.Id }) -join ',')"
    }
}

# ---- the registry stand-in: HKLM:\ paths only ----

function Assert-Hklm([string] $path) {
    if (-not $path.StartsWith('HKLM:\', [StringComparison]::OrdinalIgnoreCase)) {
        throw "stand-in registry: '$path' is not an HKLM:\ path"
    }
}

function Get-RegKey($state, [string] $path) {
    foreach ($k in @($state.Registry.Keys)) {
        if ($k -eq $path) { return $state.Registry[$k] }
    }
    return $null
}

function Test-Path {
    [CmdletBinding()]
    param([Parameter(Position = 0)] [string] $Path, [string] $LiteralPath)
    $p = if ($LiteralPath) { $LiteralPath } else { $Path }
    if (-not $p.StartsWith('HKLM:\', [StringComparison]::OrdinalIgnoreCase)) {
        return Microsoft.PowerShell.Management\Test-Path -LiteralPath $p
    }
    return $null -ne (Get-RegKey (Read-State) $p)
}

function Get-Item {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [string] $LiteralPath)
    Assert-Hklm $LiteralPath
    $values = Get-RegKey (Read-State) $LiteralPath
    if ($null -eq $values) { throw "Cannot find path '$LiteralPath' because it does not exist." }
    $o = [pscustomobject]@{ PSTypeName = 'Microsoft.Win32.RegistryKey'; Name = $LiteralPath; Values = $values }
    $o | Add-Member -MemberType ScriptMethod -Name GetValueNames -Value { [string[]]@($this.Values.Keys) }
    $o | Add-Member -MemberType ScriptMethod -Name GetValueKind -Value {
        param($name) [Microsoft.Win32.RegistryValueKind]$this.Values[$name].Kind }
    $o | Add-Member -MemberType ScriptMethod -Name GetValue -Value {
        param($name)
        $e = $this.Values[$name]
        if ($null -eq $e) { return $null }
        if ($e.Kind -eq 'DWord') { return [int]$e.Value }
        return $e.Value
    }
    return $o
}

function New-Item {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [string] $Path, [switch] $Force)
    Assert-Hklm $Path
    $state = Read-State
    if ($null -eq (Get-RegKey $state $Path)) {
        if ($null -eq $state.Registry) { $state.Registry = @{} }
        $state.Registry[$Path] = @{}
        Write-State $state "New-Item $Path"
    } elseif (-not $Force) {
        throw "A key at this path already exists: $Path"
    }
}

function Remove-Item {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [string] $LiteralPath)
    Assert-Hklm $LiteralPath
    $state = Read-State
    $values = Get-RegKey $state $LiteralPath
    if ($null -eq $values) { throw "Cannot find path '$LiteralPath' because it does not exist." }
    if ($values.Count -ne 0) { throw "stand-in registry: $LiteralPath has values; Remove-Item needs -Recurse" }
    $state.Registry.Remove($LiteralPath)
    Write-State $state "Remove-Item $LiteralPath"
}

function New-ItemProperty {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [string] $LiteralPath, [Parameter(Mandatory)] [string] $Name,
        [ValidateSet('String', 'ExpandString', 'Binary', 'DWord', 'MultiString', 'QWord')] [string] $PropertyType = 'String',
        [object] $Value, [switch] $Force)
    Assert-Hklm $LiteralPath
    $state = Read-State
    $values = Get-RegKey $state $LiteralPath
    if ($null -eq $values) { throw "Cannot find path '$LiteralPath' because it does not exist." }
    if ($values.ContainsKey($Name) -and -not $Force) { throw "The property $Name already exists." }
    # A DWord holds a 32-bit number: anything else is refused, as the registry provider does.
    $v = if ($PropertyType -eq 'DWord') { [string][int]$Value } else { [string]$Value }
    $values[$Name] = @{ Kind = $PropertyType; Value = $v }
    Write-State $state "New-ItemProperty $LiteralPath $Name $PropertyType $v"
}

function Remove-ItemProperty {
    [CmdletBinding()]
    param([Parameter(Mandatory)] [string] $LiteralPath, [Parameter(Mandatory)] [string] $Name)
    Assert-Hklm $LiteralPath
    $state = Read-State
    $values = Get-RegKey $state $LiteralPath
    if ($null -eq $values -or -not $values.ContainsKey($Name)) { throw "Property $Name does not exist at path $LiteralPath." }
    $values.Remove($Name)
    Write-State $state "Remove-ItemProperty $LiteralPath $Name"
}

Export-ModuleMember -Function Get-VM, Stop-VM, Start-VM, Set-VM, Get-VMGpuPartitionAdapter,
    Add-VMGpuPartitionAdapter, Set-VMGpuPartitionAdapter, Remove-VMGpuPartitionAdapter,
    Get-VMHostPartitionableGpu, Get-VMPartitionableGpu,
    Test-Path, Get-Item, New-Item, Remove-Item, New-ItemProperty, Remove-ItemProperty
