namespace MaeMl.Tests;

/// <summary>A fresh folder under the system temp folder for one test. The test host is killed rather than exiting, so
/// each run removes the folders of earlier test processes that are gone.</summary>
internal static class TempDir
{
    static readonly string Parent = Path.Combine(Path.GetTempPath(), "maeml-tests");
    static readonly string Root = Path.Combine(Parent, Environment.ProcessId.ToString());

    static TempDir()
    {
        if (!Directory.Exists(Parent)) return;
        foreach (var dir in Directory.GetDirectories(Parent))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId || IsRunning(pid)) continue;
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    static bool IsRunning(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    public static string Create()
    {
        var dir = Path.Combine(Root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
