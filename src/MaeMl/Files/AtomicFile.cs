namespace MaeMl.Files;

/// <summary>Writes a file so that readers see either the old or the new content, never a partial one:
/// write to a temp file in the same folder, flush to disk, then rename over the target.</summary>
public static class AtomicFile
{
    /// <summary>Runs <paramref name="write"/> on a stream to a temp file beside <paramref name="path"/> (its folder is created), then
    /// replaces <paramref name="path"/> with it; on an exception the temp file is deleted and <paramref name="path"/> is untouched.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}
