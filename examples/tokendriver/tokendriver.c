/*
 * tokendriver: a small WDM driver written to show what ddilint finds.
 * Build it with the WDK if you like; ddilint needs neither the WDK nor a build.
 */
#include <ntifs.h>

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD TokenUnload;
_Dispatch_type_(IRP_MJ_DEVICE_CONTROL) DRIVER_DISPATCH TokenDeviceControl;
_Dispatch_type_(IRP_MJ_CREATE) _Dispatch_type_(IRP_MJ_CLOSE) DRIVER_DISPATCH TokenCreateClose;
KDEFERRED_ROUTINE TokenDpc;

#define IOCTL_TOKEN_QUERY CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800, METHOD_BUFFERED, FILE_ANY_ACCESS)

typedef struct _TOKEN_CONTEXT {
    KDPC Dpc;
    KSPIN_LOCK Lock;
    HANDLE CachedToken;
} TOKEN_CONTEXT, *PTOKEN_CONTEXT;

static TOKEN_CONTEXT g_Context;

static NTSTATUS
QueryTokenUser(_In_ HANDLE Token, _Out_ PULONG Length)
{
    return ZwQueryInformationToken(Token, TokenUser, NULL, 0, Length);
}

/* Opens the caller's token: called from the IOCTL path, i.e. in the caller's process. */
static NTSTATUS
InspectCallerToken(VOID)
{
    HANDLE token = NULL;
    ULONG length = 0;
    NTSTATUS status;

    /* Bug: no OBJ_KERNEL_HANDLE, so the handle lands in the caller's handle table. */
    status = ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, 0, &token);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = QueryTokenUser(token, &length);
    if (status != STATUS_BUFFER_TOO_SMALL) {
        /* Bug: the token handle leaks on this path. */
        return status;
    }

    /* Bug: the Nt form from kernel mode. */
    NtClose(token);
    return STATUS_SUCCESS;
}

VOID
TokenDpc(_In_ PKDPC Dpc, _In_opt_ PVOID Context, _In_opt_ PVOID Arg1, _In_opt_ PVOID Arg2)
{
    HANDLE token;

    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(Context);
    UNREFERENCED_PARAMETER(Arg1);
    UNREFERENCED_PARAMETER(Arg2);

    /* Bug: a DPC runs at DISPATCH_LEVEL; ZwOpenProcessTokenEx needs PASSIVE_LEVEL. */
    if (NT_SUCCESS(ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE,
                                        &token))) {
        ZwClose(token);
    }
}

NTSTATUS
TokenCreateClose(_In_ PDEVICE_OBJECT DeviceObject, _Inout_ PIRP Irp)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

NTSTATUS
TokenDeviceControl(_In_ PDEVICE_OBJECT DeviceObject, _Inout_ PIRP Irp)
{
    PIO_STACK_LOCATION stack = IoGetCurrentIrpStackLocation(Irp);
    NTSTATUS status = STATUS_INVALID_DEVICE_REQUEST;

    UNREFERENCED_PARAMETER(DeviceObject);
    if (stack->Parameters.DeviceIoControl.IoControlCode == IOCTL_TOKEN_QUERY) {
        status = InspectCallerToken();
    }
    Irp->IoStatus.Status = status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

VOID
TokenUnload(_In_ PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    if (g_Context.CachedToken != NULL) {
        ZwClose(g_Context.CachedToken);
        g_Context.CachedToken = NULL;
    }
}

NTSTATUS
DriverEntry(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath)
{
    UNREFERENCED_PARAMETER(RegistryPath);

    KeInitializeSpinLock(&g_Context.Lock);
    KeInitializeDpc(&g_Context.Dpc, TokenDpc, &g_Context);

    /* In DriverEntry we run in the system process: a kernel handle is still required. */
    (VOID)ZwOpenProcessTokenEx(NtCurrentProcess(), TOKEN_QUERY, OBJ_KERNEL_HANDLE,
                               &g_Context.CachedToken);

    DriverObject->DriverUnload = TokenUnload;
    DriverObject->MajorFunction[IRP_MJ_CREATE] = TokenCreateClose;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = TokenCreateClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = TokenDeviceControl;
    return STATUS_SUCCESS;
}
