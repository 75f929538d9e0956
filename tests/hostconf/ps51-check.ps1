# ps51-check.ps1 FILE... — does each script parse, and would Windows
# PowerShell 5.1 run it? Parses with PowerShell's own parser and walks the
# syntax tree for what only PowerShell 7 has: the ternary ?:, the
# null-coalescing ?? and ??=, the pipeline chains && and ||, and the
# null-conditional ?. and ?[]. A script with non-ASCII bytes must start with
# a UTF-8 byte-order mark: 5.1 reads BOM-less scripts in the ANSI code page.
# Prints one line per finding ("FILE:LINE: ...") and exits 1 if there is any.
param([Parameter(Mandatory, ValueFromRemainingArguments)] [string[]] $Path)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$found = 0
function Report([string] $file, $extent, [string] $what) {
    Write-Output "${file}:$($extent.StartLineNumber): $what ($($extent.Text.Split("`n")[0].Trim()))"
    $script:found++
}
foreach ($file in $Path) {
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($file, [ref]$tokens, [ref]$errors)
    foreach ($e in $errors) {
        Report $file $e.Extent "parse error: $($e.Message)"
    }
    $nodes = $ast.FindAll({ $true }, $true)
    foreach ($n in $nodes) {
        $type = $n.GetType().Name
        if ($type -eq 'TernaryExpressionAst') {
            Report $file $n.Extent 'ternary ?: (PowerShell 7 only)'
        } elseif ($type -eq 'PipelineChainAst') {
            Report $file $n.Extent 'pipeline chain && / || (PowerShell 7 only)'
        } elseif ($type -eq 'BinaryExpressionAst' -and [string]$n.Operator -eq 'QuestionQuestion') {
            Report $file $n.Extent 'null-coalescing ?? (PowerShell 7 only)'
        } elseif ($type -eq 'AssignmentStatementAst' -and [string]$n.Operator -eq 'QuestionQuestionEquals') {
            Report $file $n.Extent 'null-coalescing assignment ??= (PowerShell 7 only)'
        } elseif ($n.PSObject.Properties['NullConditional'] -and $n.NullConditional) {
            Report $file $n.Extent 'null-conditional ?. / ?[] (PowerShell 7 only)'
        }
    }
    $bytes = [System.IO.File]::ReadAllBytes($file)
    $bom = $bytes.Length -ge 3 -and $bytes[0] -eq 0xEF -and $bytes[1] -eq 0xBB -and $bytes[2] -eq 0xBF
    if (-not $bom -and @($bytes | Where-Object { $_ -gt 0x7F }).Count -ne 0) {
        Write-Output "${file}: non-ASCII text without a UTF-8 byte-order mark (5.1 would read it as ANSI)"
        $found++
    }
}
if ($found -ne 0) {
    exit 1
}
Write-Output "$($Path.Count) script(s): PowerShell 5.1 syntax, BOM where needed"
exit 0
